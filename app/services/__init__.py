"""Use cases per domain. Each public function owns its transaction."""
