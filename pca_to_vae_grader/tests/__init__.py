"""The tests of every exercise page, ``test_<page>.py`` (see pca_to_vae_grader.pages): package data of the grader."""
