"""Helpers of the `clean` step: unicode repair, boilerplate tests, language, HTML and dumps."""
