"""Tests of the exercise pages (the autograder) and of the autograder itself."""
