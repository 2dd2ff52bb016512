"""Running the generators: the Predictor, the model-size rule, and photographs predicted into a folder."""
