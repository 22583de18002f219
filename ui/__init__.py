"""Gradio front end: screens and event handlers only; it talks to the engine through ``assistant``."""
