"""Test support: real processes (server, PostgreSQL) started and cleaned up by the tests."""
