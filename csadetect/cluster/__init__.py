"""Local clusters for real runs off Google Cloud: Flink (JobManager, TaskManager), Beam's Flink job
server, a Python SDK worker pool and a Kafka broker, fetched from PyPI and Maven Central
(:mod:`.artifacts`) and run as processes on localhost (:mod:`.local`)."""
