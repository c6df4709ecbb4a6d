"""Official middleware, each behind an extra: ``stepwise.ext.encryption`` (``stepwise[encryption]``),
``stepwise.ext.validation`` (no extra), ``stepwise.ext.sentry`` (``stepwise[sentry]``) and
``stepwise.ext.opentelemetry`` (``stepwise[otel]``)."""
