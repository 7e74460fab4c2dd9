"""Modal screens: help, request detail, prompts, grouping picker."""
