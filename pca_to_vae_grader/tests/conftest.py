"""The grader's pytest plugin (pca_to_vae_grader.plugin) for the pages' tests: ``pytest test_<page>.py --submission ...``."""
pytest_plugins = ["pca_to_vae_grader.plugin"]
