"""Seed 002's DiFix data generation: triplet export, leak-free split, trainer adapter."""
