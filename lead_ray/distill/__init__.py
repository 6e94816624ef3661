"""The distillation flow: mining, the LEAD model pair and objective, training, checkpoints, the
teacher feature cache."""
