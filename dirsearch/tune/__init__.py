"""Ray Tune: the Tuner of a sweep (search, confirm, resume), the trainable that runs one trial on a
worker, the console, and the searchers. Never imports MLflow."""
