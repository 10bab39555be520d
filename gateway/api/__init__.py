"""HTTP blueprints, one per API area. Handlers stay thin: parse, call a plain async function, shape the reply."""
