"""Measuring map files on disk, their zone-B figures, a grader's corrections and the grading page."""
