"""Training (never imported by the deployment path)."""
