"""csadetect: open, privacy-preserving CSA detection on Apache Beam.

One import name for everything that runs; its sub-packages are layered and import one way
(``docs/architecture.md``, enforced by ``.importlinter``). This package itself holds only the
thin shell: the command line (:mod:`csadetect.cli`) and the embedded demo (:mod:`csadetect.demo`),
and the two warning filters below.
"""
import warnings

# Google's client libraries warn on import about versions this project pins on purpose, lines
# that would open every command's stderr and that no user can act on:
# * google-auth, on the import of its gRPC transport (every Beam import reaches it through
#   google-cloud-storage): grpcio < 1.83 has no post-quantum TLS. Beam 2.62 requires grpcio < 1.66.
# * google-api-core, once per client library Beam 2.62 imports (BigQuery, Pub/Sub, ...): Python 3.11
#   nears its end of life (Beam's SDK containers and the Dockerfiles pin 3.11). A warning that it is
#   past its end of life still shows.
warnings.filterwarnings("ignore", message=r"grpcio < 1\.83\.0 does not support Post-Quantum", category=FutureWarning)
warnings.filterwarnings("ignore", message=r"You are using a Python version \([0-9.]+\) which Google will stop supporting",
                        category=FutureWarning)
