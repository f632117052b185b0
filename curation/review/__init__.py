"""The review queue's services, shared by the browser queue and the REST API."""
