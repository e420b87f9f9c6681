"""Local HTTP fakes of external services, spoken in their documented wire formats."""
