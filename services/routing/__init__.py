"""Routing: decides the units that must act on each incident and serves one inbox per unit."""
