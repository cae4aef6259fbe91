"""/auth: register, log in, refresh, log out (routes in app.auth.routes)."""
