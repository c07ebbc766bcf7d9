"""Test support: stream builders and local servers shared by the unit and integration tests."""
