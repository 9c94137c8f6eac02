"""DiFix fine-tuning (the lab's difix `tuning_runs/<run_name>/`): the built-in trainer, its distributed
launch, data staging and the checkpoint sync shared with custom trainers."""
