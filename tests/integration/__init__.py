"""The helpline's parts against real PostgreSQL and Redis (and the Twilio sandbox)."""
