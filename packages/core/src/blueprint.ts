import { DuplicateTask } from "./errors.js";
import type { JsonObject } from "./json.js";
import { Task, type TaskHandler, type TaskOptions } from "./task.js";

/**
 * Tasks declared apart from an App (in a library or a feature module), added later
 * with `app.addBlueprint(blueprint, { namespace })`. Until then they cannot be deferred.
 */
export class Blueprint {
  readonly #tasks = new Map<string, Task<never, unknown>>();

  task<Args = JsonObject, Result = unknown>(
    options: TaskOptions<Args>,
    handler: TaskHandler<Args, Result>,
  ): Task<Args, Result> {
    const task = new Task<Args, Result>(options, handler);
    if (this.#tasks.has(task.name)) throw new DuplicateTask(task.name);
    this.#tasks.set(task.name, task as unknown as Task<never, unknown>);
    return task;
  }

  get tasks(): ReadonlyMap<string, Task<never, unknown>> {
    return this.#tasks;
  }
}
