"""Hybrid mode: the ring buffer next to QuestDB, shadow compare, staged rollout and rollback,
listing detection and the ±20 s window around a listing trigger."""
