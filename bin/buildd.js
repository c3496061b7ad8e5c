#!/usr/bin/env node
// Runs the compiled program (npm ci builds dist/ through the `prepare` script).
import "../dist/cli.js";
