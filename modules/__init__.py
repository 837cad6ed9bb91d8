"""DSPy programs and the services they use (LM factory, model store, retriever). No Prefect here."""
