"""Settings: base.py is every deployment's, test.py the test suite's."""
