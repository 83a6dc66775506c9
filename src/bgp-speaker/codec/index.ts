export * from './constants';
export * from './errors';
export * from './ip';
export * from './attributes';
export * from './open';
export * from './message';
export * from './routes';
export * from './negotiate';
