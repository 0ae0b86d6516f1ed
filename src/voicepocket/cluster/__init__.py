"""Scale-out on Ray Serve: the same service, many processes and machines.

Two deployments::

    HTTP ──> Ingress (the FastAPI app through ``serve.ingress``; N replicas), built on
               │  ``WorkerVoices``, the cluster's ``SpeechSource``: auth, tenancy,
               │  admission (per key, shared through Redis), text limits, encoding,
               │  storage; the voice resolved in the shared SQL registry
               │  handle.options(stream=True, multiplexed_model_id=<pool key>)
               ▼
             VoiceWorker (M replicas, each a ``ResidentVoices`` with its own
                  byte-budgeted pool): chunk the text, then chunk by chunk take a fair
                  inference slot, lease the voice (load on a miss) and stream PCM back

Ray routes a request to a replica whose ``@serve.multiplexed`` loader has seen the voice's
pool key, so a voice is loaded once and then served where it lives. The loader returns a
``VoiceHandle`` (the key), never the session: the pool is the only owner of sessions and
its byte budget alone decides what stays resident. Redis (``VOICEPOCKET_REDIS_URL``) holds
the little shared state: per-key request counts, eviction broadcasts, replica stats.

Nothing outside this package imports Ray; the pool, voices and API work without it, and
the API reaches the workers only through the ``SpeechSource`` it was built with.
"""
