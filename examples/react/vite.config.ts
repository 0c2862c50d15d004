/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';
import { configDefaults } from 'vitest/config';

// The page asks its own origin for sign-in tokens (`/token`), as it would ask the app's
// backend; in development that is dev/token-server.mjs, which `npm run dev` starts.
const tokenEndpoint = `http://127.0.0.1:${process.env.TOKEN_PORT || 3002}`;

export default defineConfig({
  plugins: [react()],
  server: { proxy: { '/token': tokenEndpoint } },
  preview: { proxy: { '/token': tokenEndpoint } },
  test: {
    environment: 'jsdom',
    globalSetup: ['./test/jam-server.ts'],
    // The Chromium check runs under node:test (clients/run-tests.sh), not Vitest.
    exclude: [...configDefaults.exclude, 'test/*.browser.test.mjs'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
