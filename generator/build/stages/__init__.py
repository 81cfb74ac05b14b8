"""Compile stages that run after a site's components are rendered."""
