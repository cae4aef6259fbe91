"""/monitoring: operational endpoints: metrics and Nacos."""
