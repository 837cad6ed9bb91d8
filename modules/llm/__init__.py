"""The LM layer: one factory for the local llama.cpp model and served OpenAI-style endpoints,
and the chat body every engine speaks."""
