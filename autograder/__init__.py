"""The autograder of the book's exercises (see autograder/README.md and book/exercises/instructors.md)."""
