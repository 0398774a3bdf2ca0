//! Kafka clients (rdkafka): configuration from the config file, metadata.
