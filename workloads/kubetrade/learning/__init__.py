"""Reinforcement learning over the backtest kernel: the environment, a PPO agent in JAX, its ONNX policy."""
