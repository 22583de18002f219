"""How a question is answered: answer types, mode choice, chat, grounded and guideline modes, sources."""
