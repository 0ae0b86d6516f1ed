"""Scale-out on Ray Serve: the same service, many processes and machines.

Two applications: ``voicepocket`` (two deployments) and ``voicepocket-training``::

    HTTP ──> Ingress (the FastAPI app through ``serve.ingress``; N replicas), built on
               │  ``WorkerVoices``, the cluster's ``SpeechSource``: auth, tenancy,
               │  admission (per key, shared through Redis), text limits, encoding,
               │  storage; the voice resolved in the shared SQL registry
               │  handle.options(stream=True, multiplexed_model_id=<pool key>)
               ▼
             VoiceWorker (M replicas, each a ``ResidentVoices`` with its own
                  byte-budgeted pool): chunk the text, then chunk by chunk take a fair
                  inference slot, lease the voice (load on a miss) and stream PCM back

    SQL queue ──> TrainingWorker (K replicas, no HTTP route; ``cluster.training``): each
                  claims one queued training at a time and runs coqui's trainer as a
                  child process of the coqui environment's Python, in a Ray reservation
                  of its own: ``{"GPU": VOICEPOCKET_TRAIN_GPUS}``, else
                  ``VOICEPOCKET_TRAIN_THREADS`` CPUs apart from the voice workers

Ray routes a request to a replica whose ``@serve.multiplexed`` loader has seen the voice's
pool key, so a voice is loaded once and then served where it lives. The loader returns a
``VoiceHandle`` (the key), never the session: the pool is the only owner of sessions and
its byte budget alone decides what stays resident. Redis (``VOICEPOCKET_REDIS_URL``) holds
the little shared state: per-key request counts, eviction broadcasts, replica stats. The
ingress replicas never train; the database row is the truth of every training, so a
restart picks up queued trainings and resumes running ones from their checkpoints.

Nothing outside this package imports Ray; the pool, voices and API work without it, and
the API reaches the workers only through the ``SpeechSource`` it was built with.
"""
