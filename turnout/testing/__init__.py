"""Test helpers shipped with Turnout: the pytest plugin in `turnout.testing.plugin`."""
