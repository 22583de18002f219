"""The language model: OpenAI-protocol client, the embedded vLLM engine, its supervisor and model files."""
