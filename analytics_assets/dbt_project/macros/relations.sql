{#- A child table of a raw table (`<parent>__<list>`, e.g. feature_flags__owners), which dlt
    creates only once some row has data for it: the table when it exists, else an empty typed
    placeholder, so the models build on a new or small organisation. It is read through its
    parent source, whose Dagster asset loads it. `columns` maps name -> SQL type. -#}
{% macro optional_child_relation(parent, list_name, columns) -%}
  {{ return(_relation_or_empty(parent.database, parent.schema, parent.identifier ~ '__' ~ list_name, columns)) }}
{%- endmacro %}

{#- A raw table that dlt creates only once some scope of it is read: `segments_keys` when some
    segment is active somewhere. The table when it exists, else an empty typed placeholder.
    Reading it through source() keeps the lineage to its Dagster asset. -#}
{% macro optional_source(table_name, columns) -%}
  {%- set relation = source('split', table_name) -%}
  {{ return(_relation_or_empty(relation.database, relation.schema, relation.identifier, columns)) }}
{%- endmacro %}

{% macro _relation_or_empty(database, schema, identifier, columns) -%}
  {%- set found = none -%}
  {%- if execute -%}
    {%- set found = adapter.get_relation(database, schema, identifier) -%}
  {%- endif -%}
  {%- if found is not none -%}
    {{ return(found | string) }}
  {%- else -%}
    {%- set placeholder -%}
    (select {% for name, type in columns.items() %}cast(null as {{ type }}) as {{ adapter.quote(name) if name in ('user', 'timestamp', 'key') else name }}{{ ", " if not loop.last }}{% endfor %} where 1 = 0)
    {%- endset -%}
    {{ return(placeholder) }}
  {%- endif -%}
{%- endmacro %}

{#- string_agg with a separator, ordered. -#}
{% macro ordered_string_agg(expression, separator=', ') -%}
  {{ return(adapter.dispatch('ordered_string_agg', 'analytics_assets')(expression, separator)) }}
{%- endmacro %}
{% macro default__ordered_string_agg(expression, separator) -%}
  string_agg({{ expression }}, '{{ separator }}' order by {{ expression }})
{%- endmacro %}
{% macro snowflake__ordered_string_agg(expression, separator) -%}
  listagg({{ expression }}, '{{ separator }}') within group (order by {{ expression }})
{%- endmacro %}
