export * from './types';
export * from './decision';
export * from './policy';
export * from './export';
export * from './rib';
