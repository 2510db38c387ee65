"""moodstream dashboard: live overview, sessions, drill-down and report downloads (Dash)."""
