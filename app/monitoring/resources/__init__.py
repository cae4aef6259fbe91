"""The /monitoring views: metrics and Nacos."""
