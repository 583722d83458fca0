"""The data side: DEAP files -> preprocessed windows -> token sequences -> torch batches."""
