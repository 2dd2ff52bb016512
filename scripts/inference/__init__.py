"""Running the generators: the Predictor and the model-size rule."""
