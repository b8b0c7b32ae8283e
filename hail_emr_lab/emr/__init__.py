"""Amazon EMR: cluster discovery, EMR Serverless applications, SSM shells on nodes."""
