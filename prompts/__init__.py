"""Prompt templates as files, each with a name and a version; rendering with a missing variable raises."""

from prompts.render import PromptTemplate, TemplateError, load_template, render

__all__ = ["PromptTemplate", "TemplateError", "load_template", "render"]
