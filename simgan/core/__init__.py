"""What no task owns: the S+U refiner and its trainer, the dataset contract and atomic
writes, the streaming ingest driver, the epoch loop of estimators, realism and curve metrics,
MLflow conventions, plots. Nothing here imports a task package."""
