/**
 * GET /tasks/:id/model and GET /meta-models/:id/model: a network as a file another runtime loads
 * (ONNX or a TF.js LayersModel, src/export). A task exports its latest adapted head with its body,
 * read through the same path the predict cache loads (app.taskModel), so the file answers exactly
 * what /predict answers, except that a calibrated meta-model's classifier answers probabilities at
 * its temperature (the calibration also rides in the file's metadata, see exportModel). A meta-model exports as stored: its body and meta-trained head (what a task
 * adapted with zero steps predicts). A meta-model with no head worth a file answers 409 with the
 * reason (metaModelExportRefusal: ProtoNets and multitask learn none, a zero-head one stores zeros):
 * export an adapted task instead.
 */
import type { FastifyReply } from 'fastify';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { getMetaModel } from '../../db/repositories/meta-models.js';
import { exportModel, metaModelExportRefusal, type ExportExtras, type ExportFormat } from '../../export/index.js';
import { taskParams, type ModelSpec, type ParamArrays } from '../../meta/index.js';
import { HttpProblem, taskNotAdapted } from '../problem.js';
import { IdParams, problemResponses } from '../schemas/common.js';
import { MetaModelRefParams } from '../schemas/meta-models.js';
import { metaModelExportRefused, ModelExportQuery, modelFileResponse } from '../schemas/model-export.js';

/** Sends the network in `format` as an attachment named `<name><extension>`. */
function sendModel(reply: FastifyReply, format: ExportFormat, spec: ModelSpec, params: ParamArrays, name: string, extras?: ExportExtras): FastifyReply {
  const file = exportModel(format, spec, params, name, extras);
  reply.header('content-disposition', `attachment; filename="${name}${file.extension}"`).type(file.contentType);
  // A Buffer is sent as is; the TF.js document goes through the response schema's serialiser.
  return reply.send(file.format === 'onnx' ? Buffer.from(file.body.buffer, file.body.byteOffset, file.body.byteLength) : file.body);
}

const modelExport: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/tasks/:id/model', {
    schema: {
      operationId: 'exportTaskModel',
      summary: "Download the task's adapted model (latest head with its body) as ONNX or TF.js",
      tags: ['tasks'],
      params: IdParams,
      querystring: ModelExportQuery,
      response: {
        200: modelFileResponse("The task's model at its latest head version; it answers as /predict does"),
        ...problemResponses(400, 404),
        409: { ...problemResponses(409)[409], description: 'The task was never adapted' },
      },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const found = await app.taskModel(request.tenant.id, id);
    if (found.status === 'missing') throw new HttpProblem(404, `No task ${id}`);
    if (found.status !== 'ready') throw taskNotAdapted(id);
    const calibration = (await app.metaModel(found.metaModelId))?.calibration;
    return sendModel(reply, request.query.format, found.spec, found.params, `task-${id}-v${found.headVersion}`, { calibration, labels: found.labels });
  });

  app.get('/meta-models/:id/model', {
    schema: {
      operationId: 'exportMetaModel',
      summary: 'Download a meta-model (its body and meta-trained head) as ONNX or TF.js',
      description:
        "The meta-model as stored, the file answering what a task adapted from it with zero steps predicts. 409 (`reason` in the problem) for a meta-model with no head worth a file: `no-head` for ProtoNets and multitask, which learn no head (each task's is built from its support set); `zero-head` for one meta-trained with `hyper.zeroHead`, whose stored head is all zeros (the file would answer uniform probabilities and label 0, or 0 for regression, for every input). Adapt a task from it and export the task instead.",
      tags: ['meta-models'],
      params: MetaModelRefParams,
      querystring: ModelExportQuery,
      response: {
        200: modelFileResponse('The meta-model as stored: what a task adapted with zero steps predicts'),
        ...problemResponses(400, 404),
        409: metaModelExportRefused,
      },
    },
  }, async (request, reply) => {
    const { id: ref } = request.params;
    const view = await getMetaModel(app.db, request.tenant.id, ref);
    const model = view && (await app.metaModel(view.id));
    if (!view || !model) throw new HttpProblem(404, `No meta-model ${ref}`);
    const refusal = metaModelExportRefusal(model, ref);
    if (refusal) {
      throw new HttpProblem(409, refusal.detail, { title: refusal.title, extensions: { metaModelId: view.id, algorithm: model.algorithm, reason: refusal.reason } });
    }
    return sendModel(reply, request.query.format, model.spec, taskParams(model, {}), `meta-model-${view.name}-v${view.version}`, { calibration: model.calibration });
  });
};

export default modelExport;
