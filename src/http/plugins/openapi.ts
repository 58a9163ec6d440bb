/**
 * The OpenAPI 3.1 document, generated from the route schemas (declared once), served as
 * GET /openapi.json and browsable at /docs.
 */
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';

async function openapi(app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'fastadapt',
        description: 'Meta-learning as a service: meta-train on task families, adapt to a new task from a few examples, serve predictions.',
        version: '0.1.0',
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'An API key: `Authorization: Bearer <key>`' },
        },
      },
      // Every route needs a key unless its schema says `security: []` (health, docs).
      security: [{ bearerAuth: [] }],
      tags: [{ name: 'operations', description: 'Health, readiness and documentation' }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

export default fp(openapi, { name: 'openapi', fastify: '5.x' });
