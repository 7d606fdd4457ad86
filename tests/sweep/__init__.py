"""Tests of visionbench/sweep."""
