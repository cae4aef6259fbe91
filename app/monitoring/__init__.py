"""/monitoring: operational endpoints (Nacos now; metrics to come)."""
