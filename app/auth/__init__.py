"""Authentication: tokens, passwords, the password policy and guessing budgets (what services import).

The /auth views are in app/auth/resources/auth.py.
"""
